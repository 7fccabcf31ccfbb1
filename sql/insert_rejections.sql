insert into rejections
select snapshot_id, source, row_key, reason, detail, raw_excerpt, observed_at
from rejection_batch;
