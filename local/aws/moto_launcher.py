"""Runs moto's server with three fixes that our control plane depends on.

1. DynamoDB requests are serialized. moto evaluates a condition expression and then writes
   without a lock, so two threads could both pass `attribute_not_exists`; real DynamoDB never
   allows that. SQS long polls are not serialized: they would block every other caller.
2. A cancelled TransactWriteItems is rolled back item by item. moto deep-copies every touched
   table before each transaction and swaps the copy in on failure, which costs O(table size) per
   write and orphans the table's stream shard, so open stream iterators stop seeing new records.
3. KMS GetPublicKey answers with `KeySpec` as AWS does; moto sends only the deprecated
   `CustomerMasterKeySpec`.
"""
import argparse
import copy
import json
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.kms.responses import KmsResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

_dynamodb_lock = threading.Lock()


def serialize_dynamodb(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB"):
            with _dynamodb_lock:
                # Materialise the body inside the lock: werkzeug may stream it lazily.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


class _TablesAreNotCopied:
    """Stands in for the `copy` module inside moto.dynamodb.models: tables are kept as they are."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def _item_key(table, attributes):
    if table.hash_key_attr not in attributes:
        return None
    hash_value = DynamoType(attributes[table.hash_key_attr])
    range_value = None
    if table.range_key_attr is not None and table.range_key_attr in attributes:
        range_value = DynamoType(attributes[table.range_key_attr])
    return hash_value, range_value


def _put_back(table, hash_value, range_value, saved):
    if table.range_key_attr is not None:
        if saved is None:
            table.items[hash_value].pop(range_value, None)
        else:
            table.items[hash_value][range_value] = saved
    elif saved is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = saved


def _patch_transactions():
    original = dynamodb_models.DynamoDBBackend.transact_write_items
    dynamodb_models.copy = _TablesAreNotCopied()

    def transact_write_items(self, transact_items):
        saved = []
        stream_lengths = {}
        for entry in transact_items:
            _, operation = next(iter(entry.items()))
            table = self.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = _item_key(table, operation.get("Key") or operation.get("Item") or {})
            if key is None:
                continue
            saved.append((table, key, copy.deepcopy(table.get_item(*key))))
            if table.stream_shard is not None:
                stream_lengths.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
        try:
            return original(self, transact_items)
        except Exception:
            for table, (hash_value, range_value), item in reversed(saved):
                _put_back(table, hash_value, range_value, item)
            for shard, length in stream_lengths.values():
                del shard.items[length:]
            raise

    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


def _patch_get_public_key():
    original = KmsResponse.get_public_key

    def get_public_key(self):
        body = json.loads(original(self))
        body["KeySpec"] = body["CustomerMasterKeySpec"]
        return json.dumps(body)

    KmsResponse.get_public_key = get_public_key


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _patch_transactions()
    _patch_get_public_key()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialize_dynamodb(app), threaded=True)


if __name__ == "__main__":
    main()
