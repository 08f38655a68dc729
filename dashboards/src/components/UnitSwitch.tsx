import type { GlucoseUnit } from '../api';
import { GLUCOSE_UNITS } from '../units';

/** mg/dL or mmol/L; the API converts, so every number shown comes from the server. */
export function UnitSwitch(props: { value: GlucoseUnit; onChange: (unit: GlucoseUnit) => void }) {
  return (
    <fieldset class="segmented unit-switch">
      <legend>Glucose unit</legend>
      {GLUCOSE_UNITS.map((unit) => (
        <label key={unit} class={props.value === unit ? 'segment segment-on' : 'segment'}>
          <input
            type="radio"
            name="glucose-unit"
            value={unit}
            checked={props.value === unit}
            onChange={() => props.onChange(unit)}
          />
          {unit}
        </label>
      ))}
    </fieldset>
  );
}
