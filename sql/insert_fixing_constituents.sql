-- The providers (or a basket's member indices) of the fixings just appended: constituent_batch is
-- registered by pipeline.fixing, one row per provider considered, included or excluded with its reason.
insert into fixing_constituents (
    index_id, fixing_date, revision, provider, snapshot_id, provider_value, n_observations, included,
    exclusion_reason, weight, value_rule, observed_at, valid_until
)
select
    index_id, fixing_date, revision, provider, snapshot_id, provider_value, n_observations, included,
    exclusion_reason, weight, value_rule, observed_at, valid_until
from constituent_batch;
