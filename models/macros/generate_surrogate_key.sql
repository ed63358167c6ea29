{#- The SQL dbt-utils' generate_surrogate_key compiles to on DuckDB, for dbt runs without the
    dbt-utils package; magpie's runner provides the same function natively. -#}
{% macro generate_surrogate_key(field_list) -%}
md5(cast({% for field in field_list %}coalesce(cast({{ field }} as VARCHAR), '_dbt_utils_surrogate_key_null_'){% if not loop.last %} || '-' || {% endif %}{% endfor %} as VARCHAR))
{%- endmacro %}
