-- A patient's current day rows (totals, running totals, samples) are written again with each of
-- the day's readings. On a full page PostgreSQL puts every new version on another page and adds
-- an index entry for it; with room left on the page the new version goes beside the old one
-- without a new index entry (a HOT update), and the old one is pruned in place. Measured on a
-- fleet, 2 % of the day rows' updates were HOT on full pages. Applies to pages written from now
-- on; past days are no longer updated.
ALTER TABLE glucose_days SET (fillfactor = 70);
ALTER TABLE glucose_day_samples SET (fillfactor = 70);
ALTER TABLE blood_pressure_days SET (fillfactor = 70);
