{# Clients, one row per version of their attributes (from the directory's snapshot): valid_from until
   valid_to (null: still valid), is_current on the version in force now. #}
select
    md5(concat_ws(':', client_id, dbt_valid_from::text)) as client_version_id,
    client_id,
    client_name,
    billing_timezone,
    billing_anchor_day,
    currency,
    dbt_valid_from as valid_from,
    dbt_valid_to as valid_to,
    dbt_valid_to is null as is_current

from {{ ref('snap_directory__clients') }}
