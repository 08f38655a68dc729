-- The `alerts` data category granted nothing: an alert belongs to the category of the
-- readings that raised it, and is received through `receive_alerts` on glucose or blood
-- pressure. It leaves the model. A grant of that category alone granted nothing and goes.
DELETE FROM grants WHERE categories <@ ARRAY['alerts'];
UPDATE grants SET categories = array_remove(categories, 'alerts') WHERE 'alerts' = ANY (categories);
ALTER TABLE grants DROP CONSTRAINT grants_categories_check;
ALTER TABLE grants ADD CONSTRAINT grants_categories_check CHECK (
    cardinality(categories) > 0 AND categories <@ ARRAY['glucose', 'blood_pressure', 'device_info']
);
