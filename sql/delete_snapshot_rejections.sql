delete from rejections where snapshot_id = $snapshot_id;
