insert into fetch_log (source, url, attempted_at, outcome, http_status, error, snapshot_id)
values ($source, $url, $attempted_at, $outcome, $http_status, $error, $snapshot_id)
on conflict do nothing;
