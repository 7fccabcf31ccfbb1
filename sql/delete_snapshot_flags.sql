delete from observation_flags where snapshot_id = $snapshot_id;
