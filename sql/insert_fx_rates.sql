-- fx_rate_batch: an Arrow table registered by the loader, one row per FxRate, typed explicitly.
insert into fx_rates (rate_date, currency, usd_per_unit, snapshot_id, units_per_eur)
select rate_date, currency, usd_per_unit, snapshot_id, units_per_eur
from fx_rate_batch;
