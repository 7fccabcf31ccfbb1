-- What a fixing could see: the time of the newest load of observations (snapshot_parses.parsed_at, outcome
-- loaded) when it was computed. tsi verify recomputes each fixing from the bodies loaded up to then, so a body
-- loaded later (a late parse, a correction too small to be revised) is not counted against it. Measured on
-- the loader's clock, not on computed_at, which a replay or a backfill may set to another time. Null for
-- fixings made before this column (verify then uses every body).
alter table fixings add column loaded_through timestamp;
