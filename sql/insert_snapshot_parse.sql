insert into snapshot_parses (snapshot_id, parsed_at, outcome, n_observations, n_rejections, error)
values ($snapshot_id, $parsed_at, $outcome, $n_observations, $n_rejections, $error);
