-- A (re)load replaces the snapshot's digests with its observations (insert_observation_digests.sql remakes them).
delete from observation_digests where snapshot_id = $snapshot_id;
