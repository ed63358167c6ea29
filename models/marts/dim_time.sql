{{ config(materialized='table', schema='marts') }}
-- Every minute of the day, with the part of day it belongs to.
select
    cast(minute_of_day as integer) as time_id,
    cast(minute_of_day // 60 as integer) as hour,
    cast(minute_of_day % 60 as integer) as minute,
    lpad(cast(minute_of_day // 60 as varchar), 2, '0') || ':' || lpad(cast(minute_of_day % 60 as varchar), 2, '0') as label,
    case
        when minute_of_day < 6 * 60 then 'night'
        when minute_of_day < 12 * 60 then 'morning'
        when minute_of_day < 18 * 60 then 'afternoon'
        else 'evening'
    end as part_of_day
from range(0, 24 * 60) as t(minute_of_day)
