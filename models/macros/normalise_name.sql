{#- Display-independent form of a name for grouping albums: lower case, accents stripped,
    surrounding space trimmed. -#}
{% macro normalise_name(column) -%}
nullif(lower(strip_accents(trim({{ column }}))), '')
{%- endmacro %}
