-- Observations of the period ($window_floor, $window_ceiling] that the digests do not account for: the
-- observations' count less the digests' row count. Not 0 means rows loaded without digests (or digests left
-- from rows since deleted): a fixing would not see them, so pipeline.fixing refuses to fix.
select
    (select count(*) from observations where observed_at > $window_floor and observed_at <= $window_ceiling)
    - (select coalesce(sum(n_rows), 0) from observation_digests
       where observed_at > $window_floor and observed_at <= $window_ceiling) as undigested;
