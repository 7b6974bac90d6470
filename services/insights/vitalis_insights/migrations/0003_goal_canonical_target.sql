-- A goal's target in the series' canonical unit, which progress is computed in (for example an LDL
-- target given in mmol/L, converted by the biomarkers dictionary to mg/dL). NULL: the target's own
-- unit is the canonical one.
ALTER TABLE goals ADD COLUMN canonical_target jsonb;
