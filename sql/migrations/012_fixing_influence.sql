-- What could move a fixing (README "What could move it"): per fixing and provider (or a basket's member
-- index), the value the method gives without that provider, re-applied on the same window and rung (the
-- outlier screen and the estimator re-run on the others' values; never widened). Written by
-- pipeline.influence in the transaction that writes the fixing; derived data, recomputable from the
-- fixing's constituents and definition. A suppressed fixing has no rows (it has no value to move).
create table fixing_influence (
    index_id                  varchar not null,
    fixing_date               date not null,
    revision                  integer not null,
    provider                  varchar not null,  -- a provider, or a basket's member index
    had_vote                  boolean not null,  -- false: excluded before the screen (no vote), no effect
    stands                    boolean not null,  -- false: without it the fixing would not stand (or see reason)
    usd_per_gpu_hour_without  decimal(20, 4),    -- the value without it, rounded as a fixing; null if it falls
    usd_per_mtok_without      decimal(20, 4),
    move_usd_per_gpu_hour     decimal(20, 4),    -- value without it minus the fixing's value
    move_usd_per_mtok         decimal(20, 4),
    move_pct                  decimal(18, 4),    -- the move in % of the fixing's value, half-even
    n_providers_without       integer not null,  -- providers the estimator would use without it
    screened_without          varchar,           -- providers the screen would drop without it (comma list)
    listed_gpus               decimal(38, 4),    -- its raw weight in capped_weight_median (null: a member)
    largest                   boolean not null,  -- the largest |move| of the fixing (ties: first provider)
    reason                    varchar,           -- code: detail (no_vote, insufficient_providers, ...)
    primary key (index_id, fixing_date, revision, provider)
);
