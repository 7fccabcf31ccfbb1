insert into fixing_constituents (
    index_id, fixing_date, revision, provider, snapshot_id, provider_value, n_observations, included,
    exclusion_reason, weight
) values (
    $index_id, $fixing_date, $revision, $provider, $snapshot_id, $provider_value, $n_observations, $included,
    $exclusion_reason, $weight
);
