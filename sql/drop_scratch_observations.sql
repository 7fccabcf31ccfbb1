drop table if exists temp.observations;
