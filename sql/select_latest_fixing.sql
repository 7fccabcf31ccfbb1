-- The newest revision of one index's fixing on one date, if any.
select revision, status, usd_per_gpu_hour, usd_per_mtok, input_hash, definition_sha256
from fixings
where index_id = $index_id and fixing_date = $fixing_date
order by revision desc
limit 1;
