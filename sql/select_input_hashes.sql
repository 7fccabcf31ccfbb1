-- The input hash of each target in hash_targets (target_id), over every provider considered, included or
-- not (an exclusion is a decision the inputs determine), from the digests it read (fixing_digests: one pass
-- of select_fixing_digests.sql; README "Methodology", step 9): the sha256 of their digest_sha256 values,
-- sorted in byte order and joined by line feeds. Each digest names its snapshot, provider, instrument, price
-- type and validity and covers its rows, so this is a hash of every observation the fixing read.
-- Also each provider's snapshot_id (the least of its collection's bodies: several only for a paged API).
with digests as (
    select d.target_id, d.provider, d.snapshot_id, d.digest_sha256
    from fixing_digests as d
    semi join hash_targets as h using (target_id)
),

targets as (
    select target_id, sha256(array_to_string(list_sort(list(digest_sha256)), chr(10))) as input_hash
    from digests
    group by target_id
)

select p.target_id, p.provider, p.snapshot_id, t.input_hash
from (select target_id, provider, min(snapshot_id) as snapshot_id from digests group by target_id, provider) as p
join targets as t using (target_id);
