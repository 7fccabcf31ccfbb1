-- The newest file published for one fixing date (a later revision of the date is a new file beside the
-- first, fixings_<date>_pubN.csv): what an index page links as the day's CSV, with its sha256.
select path, sha256, byte_size
from publications
where fixing_date = $fixing_date
order by published_at desc, path desc
limit 1;
