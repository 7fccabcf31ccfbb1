-- Append the leave-one-out rows of fixings (pipeline.influence registers influence_batch). A fixing's rows
-- are written once: keys already present add nothing, so a rerun or a backfill is harmless.
insert into fixing_influence (
    index_id, fixing_date, revision, provider, had_vote, stands, usd_per_gpu_hour_without, usd_per_mtok_without,
    move_usd_per_gpu_hour, move_usd_per_mtok, move_pct, n_providers_without, screened_without, listed_gpus,
    largest, reason
)
select
    b.index_id, b.fixing_date, b.revision, b.provider, b.had_vote, b.stands, b.usd_per_gpu_hour_without,
    b.usd_per_mtok_without, b.move_usd_per_gpu_hour, b.move_usd_per_mtok, b.move_pct, b.n_providers_without,
    b.screened_without, b.listed_gpus, b.largest, b.reason
from influence_batch as b
anti join fixing_influence as i using (index_id, fixing_date, revision, provider);
