import type { GlucoseUnit } from './api';

export const GLUCOSE_UNITS: readonly GlucoseUnit[] = ['mg/dL', 'mmol/L'];

/**
 * The standard target range, 70–180 mg/dL (International Consensus on Time in Range,
 * Battelino et al., Diabetes Care 2019), given in mmol/L as 3.9–10.0.
 */
export const TARGET_RANGE: Record<GlucoseUnit, { low: number; high: number }> = {
  'mg/dL': { low: 70, high: 180 },
  'mmol/L': { low: 3.9, high: 10.0 },
};

/** The y axis shows at least this much, so a flat day still reads as a day in range. */
export const GLUCOSE_AXIS: Record<GlucoseUnit, { min: number; max: number }> = {
  'mg/dL': { min: 40, max: 300 },
  'mmol/L': { min: 2.2, max: 16.7 },
};
