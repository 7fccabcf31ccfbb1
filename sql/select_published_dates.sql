-- Every fixing date with a published file, oldest first: what `tsi verify` with no date verifies.
select distinct fixing_date from publications order by fixing_date;
