-- The providers (or member indices) of one revision of a fixing: included ones first, by value.
select provider, snapshot_id, provider_value, n_observations, included, exclusion_reason, weight, value_rule,
       observed_at, valid_until
from fixing_constituents
where index_id = $index_id and fixing_date = $fixing_date and revision = $revision
order by included desc, provider_value nulls last, provider;
