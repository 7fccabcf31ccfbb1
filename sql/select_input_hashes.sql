-- The input hash of each target in hash_targets (target_id), over every provider considered, included or
-- not (an exclusion is a decision the inputs determine), from the digests it read (fixing_digests: one pass
-- of select_fixing_digests.sql; README "Methodology", step 9): the sha256 of their digest_sha256 values,
-- sorted in byte order and joined by line feeds. Each digest names its snapshot, provider, instrument, price
-- type and validity and covers its rows, so this is a hash of every observation the fixing read.
-- backfill: the fixing read an imported body (tsi import; its digests have valid_until): it is computed after the
-- fact from dated records, not live at its fixing time.
select
    d.target_id,
    sha256(array_to_string(list_sort(list(d.digest_sha256)), chr(10))) as input_hash,
    bool_or(d.valid_until is not null) as backfill
from fixing_digests as d
semi join hash_targets as h using (target_id)
group by d.target_id;
