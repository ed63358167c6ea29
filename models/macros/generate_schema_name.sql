{#- Models and seeds go to the schema their config names (staging, intermediate, marts,
    seeds), not dbt's default "<target>_<custom>"; magpie's runner does the same. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
{%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
