-- The newest load of observations so far (null if none): the inputs a fixing computed now can see
-- (fixings.loaded_through, migration 008).
select max(parsed_at) from snapshot_parses where outcome = 'loaded';
