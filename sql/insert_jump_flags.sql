-- Flag every row of one snapshot whose price moved by $jump_ratio or more (up or down) from the same row
-- (same source, provider, row key) in that provider's previous snapshot. A flag does not refuse the price.
-- $observed_at: the snapshot's fetch time, which all its rows carry.
with current_rows as (
    select snapshot_id, source, provider, row_key, observed_at,
           coalesce(usd_per_gpu_hour, usd_per_mtok) as usd_price
    from observations
    where snapshot_id = $snapshot_id
      and observed_at = $observed_at  -- the snapshot's fetch time: its zone maps skip the rest of the table
),

previous_rows as (
    -- for each row key, the newest earlier row (by fetch time, then snapshot id: a row key is unique within a
    -- snapshot, so this is one row); a hash aggregate, where a window over every earlier row sorted them all
    select c.row_key, any_value(c.usd_price) as usd_price,
           arg_max(coalesce(p.usd_per_gpu_hour, p.usd_per_mtok), (p.observed_at, p.snapshot_id)) as previous_price,
           arg_max(p.snapshot_id, (p.observed_at, p.snapshot_id)) as previous_snapshot
    from current_rows as c
    join observations as p
        on  p.source = c.source
        and p.provider = c.provider
        and p.row_key = c.row_key
        -- bounded look-back keeps the check cheap however long the history grows; constant bounds, so that
        -- the zone maps of observed_at skip the rest of the table
        and p.observed_at < $observed_at
        and p.observed_at >= $observed_at - interval 31 day
    group by c.row_key
)

insert into observation_flags (snapshot_id, row_key, flag, detail)
select
    $snapshot_id,
    row_key,
    'jump_vs_previous',
    'price ' || usd_price::varchar || ' vs ' || previous_price::varchar || ' in snapshot ' || previous_snapshot
from previous_rows
where usd_price >= previous_price * $jump_ratio or usd_price * $jump_ratio <= previous_price;
