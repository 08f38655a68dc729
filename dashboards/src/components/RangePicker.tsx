// The period a page shows: quick choices, or two calendar days in the patient's time zone.

import { useState } from 'preact/hooks';
import type { TimeRange } from '../api';
import { dayOf, startOfDay } from '../format';

export interface ChosenRange extends TimeRange {
  /** A preset's key, or "custom". */
  key: string;
}

const PRESETS: { key: string; label: string; hours: number }[] = [
  { key: '24h', label: '24 hours', hours: 24 },
  { key: '3d', label: '3 days', hours: 72 },
  { key: '7d', label: '7 days', hours: 7 * 24 },
  { key: '14d', label: '14 days', hours: 14 * 24 },
  { key: '30d', label: '30 days', hours: 30 * 24 },
  { key: '90d', label: '90 days', hours: 90 * 24 },
];

export function presetRange(key: string, now: Date = new Date()): ChosenRange {
  const preset = PRESETS.find((p) => p.key === key) ?? PRESETS[3];
  return { key: preset.key, from: new Date(now.getTime() - preset.hours * 3_600_000), to: now };
}

export function RangePicker(props: { value: ChosenRange; timeZone: string; onChange: (range: ChosenRange) => void }) {
  const { value, timeZone, onChange } = props;
  const [fromDay, setFromDay] = useState(dayOf(value.from, timeZone));
  const [toDay, setToDay] = useState(dayOf(value.to, timeZone));
  const [problem, setProblem] = useState<string | null>(null);

  const applyCustom = (event: Event) => {
    event.preventDefault();
    const from = startOfDay(fromDay, timeZone);
    // The last day chosen is included: up to the start of the next one.
    const next = new Date(startOfDay(toDay, timeZone).getTime() + 36 * 3_600_000);
    const to = startOfDay(dayOf(next, timeZone), timeZone);
    if (!(from < to)) {
      setProblem('The first day must not be after the last.');
      return;
    }
    setProblem(null);
    onChange({ key: 'custom', from, to });
  };

  return (
    <div class="range-picker">
      <div class="segmented" role="group" aria-label="Period">
        {PRESETS.map((preset) => (
          <button
            type="button"
            key={preset.key}
            class="button button-small"
            aria-pressed={value.key === preset.key}
            onClick={() => onChange(presetRange(preset.key))}
          >
            {preset.label}
          </button>
        ))}
      </div>
      <form class="custom-range" onSubmit={applyCustom}>
        <label>
          From <input type="date" value={fromDay} required onInput={(e) => setFromDay(e.currentTarget.value)} />
        </label>
        <label>
          To <input type="date" value={toDay} required onInput={(e) => setToDay(e.currentTarget.value)} />
        </label>
        <button type="submit" class="button button-small">
          Show
        </button>
        {problem && (
          <span class="field-error" role="alert">
            {problem}
          </span>
        )}
      </form>
    </div>
  );
}
