"""Runs moto's server with DynamoDB requests serialized.

moto evaluates a condition expression and then writes, without a lock, so two
threads can both pass `attribute_not_exists`. Real DynamoDB never allows that, and
our allocation code depends on it, so every DynamoDB call is run under one lock.
SQS long polls are not serialized: they would block every other caller.
"""
import argparse
import threading

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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialize_dynamodb(app), threaded=True)


if __name__ == "__main__":
    main()
