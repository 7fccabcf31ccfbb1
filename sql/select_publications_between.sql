-- Every file published for a fixing date from $first_date to $last_date, with its sha256 and size as written:
-- what the manifest lists (pipeline/history.py) and what tsi verify checks the files on disk against.
select path, sha256, byte_size, fixing_date
from publications
where fixing_date between $first_date and $last_date
order by path;
