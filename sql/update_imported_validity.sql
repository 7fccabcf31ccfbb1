-- The standing-list rule (README "Import"; migration 009): each imported snapshot counts by date through
-- valid_until = the date of the next imported snapshot of its series (source, provider, url; on that date
-- the newer one wins when it is there by the fixing time), at most valid_days days after its own date.
-- Only snapshots whose valid_until changes are updated; their ids are returned, so that the loader can give
-- their observations the new date.
update raw_snapshots as s
set valid_until = v.valid_until
from (
    select
        snapshot_id,
        -- least() passes over a null: the last snapshot of a series is valid for valid_days days
        least(
            lead(fetched_at::date) over (
                partition by source, coalesce(provider, ''), url order by fetched_at, snapshot_id
            ),
            fetched_at::date + valid_days
        ) as valid_until
    from raw_snapshots
    where imported_at is not null
) as v
where s.snapshot_id = v.snapshot_id
  and s.valid_until is distinct from v.valid_until
returning s.snapshot_id;
