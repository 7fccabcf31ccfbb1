-- Of the fixings in influence_keys (index_id, fixing_date, revision; registered by pipeline.influence), those
-- without leave-one-out rows yet: new revisions, and revisions written before migration 012.
select k.index_id, k.fixing_date, k.revision
from influence_keys as k
anti join fixing_influence as i using (index_id, fixing_date, revision);
