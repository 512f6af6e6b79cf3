"""Validates JSON documents against a JSON Schema (draft 2020-12), formats checked.

Usage: validate_schema.py SCHEMA < documents.json  (a JSON array of documents)
Prints one line per document, "ok" or "invalid: <first error>", and exits 0 only if every
document is valid. Needs `pip install 'jsonschema[format-nongpl]'` (scripts/services.sh).
"""
import json
import sys

import jsonschema
# Without these the date-time and uri formats are silently not checked: require them.
import rfc3339_validator  # noqa: F401
import rfc3986_validator  # noqa: F401


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    validator_class = jsonschema.Draft202012Validator
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    documents = json.load(sys.stdin)
    all_valid = True
    for document in documents:
        error = jsonschema.exceptions.best_match(validator.iter_errors(document))
        if error is None:
            print("ok")
        else:
            all_valid = False
            print(f"invalid: {error.message} at {list(error.absolute_path)}")
    sys.exit(0 if all_valid else 1)


main()
