#!/bin/sh
# Like nginx's hook: render every template into conf.d, one sh -c per template.
set -e
ME=$(basename "$0")
for template in /etc/httpd/templates/*.template; do
  [ -f "$template" ] || continue
  output="/etc/httpd/conf.d/$(basename "$template" .template)"
  echo "$ME: Running envsubst on $template to $output"
  sh -c "sed -e 's/\${PORT}/${PORT:-8080}/g' '$template' > '$output'"
done
