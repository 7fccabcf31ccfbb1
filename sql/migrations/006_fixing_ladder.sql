-- Methodology 2 (README "Methodology"): the fallback ladder, carried values, the dispersion mean, exact
-- provider values, and the rule that made each provider value.

-- The window the value rests on, in hours: the index's own (status final) or a wider rung of the ladder
-- (status widened); for a carried fixing, the window of the fixing it repeats; for a suppressed one, the
-- widest window tried.
alter table fixings add column window_hours integer;
-- Status carried: the date whose value is repeated (everything else in the row is that fixing's).
alter table fixings add column carried_from date;
-- The arithmetic mean of the dispersion basis (provider values or observations, as the definition says).
alter table fixings add column mean_value decimal(20, 4);

-- A provider value may be a median of region medians times a blend share: up to 14 decimal places, kept
-- exactly. It is null for a blended price missing a leg; a basket's constituent is an index, not a snapshot.
alter table fixing_constituents alter column provider_value set data type decimal(38, 20);
alter table fixing_constituents alter column provider_value drop not null;
alter table fixing_constituents alter column snapshot_id drop not null;
-- median_of_rows, median_of_region_medians, gpu_weighted_median (a marketplace), member_index (a basket).
alter table fixing_constituents add column value_rule varchar;
