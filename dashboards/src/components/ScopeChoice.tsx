// What a grant shares, as the patient chooses it: kinds of data, how much, and why. Used when
// sharing with someone by id and when accepting a care team's invitation.

import type { Access, DataCategory, Purpose } from '../api';
import { ACCESS_LABELS, CATEGORY_LABELS, PURPOSE_LABELS, capitalize, labelEntries } from '../format';

export interface Scope {
  categories: DataCategory[];
  access: Access[];
  purpose: Purpose;
}

const toggle = <T extends string>(list: T[], value: T, on: boolean) =>
  on ? [...list.filter((v) => v !== value), value] : list.filter((v) => v !== value);

export function ScopeChoice(props: { scope: Scope; onChange: (scope: Scope) => void; idPrefix: string }) {
  const { scope, onChange } = props;
  return (
    <>
      <fieldset>
        <legend>What</legend>
        <div class="choices">
          {labelEntries(CATEGORY_LABELS).map(([code, text]) => (
            <label key={code}>
              <input
                type="checkbox"
                checked={scope.categories.includes(code)}
                onChange={(e) =>
                  onChange({ ...scope, categories: toggle(scope.categories, code, e.currentTarget.checked) })
                }
              />
              {capitalize(text)}
            </label>
          ))}
        </div>
      </fieldset>
      <fieldset>
        <legend>How much</legend>
        <div class="choices">
          {labelEntries(ACCESS_LABELS).map(([code, text]) => (
            <label key={code}>
              <input
                type="checkbox"
                checked={scope.access.includes(code)}
                onChange={(e) => onChange({ ...scope, access: toggle(scope.access, code, e.currentTarget.checked) })}
              />
              {capitalize(text)}
            </label>
          ))}
        </div>
      </fieldset>
      <label for={`${props.idPrefix}-purpose`}>Why</label>
      <select
        id={`${props.idPrefix}-purpose`}
        value={scope.purpose}
        onChange={(e) => onChange({ ...scope, purpose: e.currentTarget.value as Purpose })}
      >
        {labelEntries(PURPOSE_LABELS).map(([code, text]) => (
          <option key={code} value={code}>
            {capitalize(text)}
          </option>
        ))}
      </select>
    </>
  );
}

/** The message when a scope allows nothing, or null. */
export function scopeProblem(scope: Scope): string | null {
  return scope.categories.length === 0 || scope.access.length === 0
    ? 'Choose at least one kind of data and one use.'
    : null;
}
