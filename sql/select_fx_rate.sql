-- The rate that converts a price observed on $on_date: the newest rate dated on or before that day, at most
-- $max_age_days older (weekends and TARGET holidays have no ECB fixing). Several snapshots may carry the same
-- published rate; the tie-break on snapshot_id only makes the choice deterministic.
select rate_date, usd_per_unit
from fx_rates
where currency = $currency
  and rate_date <= $on_date
  and rate_date >= $on_date - $max_age_days::integer
order by rate_date desc, snapshot_id
limit 1;
