"""Runs LocalStack's runtime (as `python -m localstack.runtime.main`) and stops it when stdin closes.

S3 keeps large objects and upload parts in a fixed /tmp folder shared by every LocalStack on the
machine (and deleting a bucket there deletes it for all); each instance gets its own instead.

local/aws/local-aws.ts holds a pipe to this process's stdin for as long as it lives. If that Node
process ends without calling stop() (a crash, SIGKILL, Ctrl-C of a test run), the pipe closes and
LocalStack shuts down as on SIGTERM, which also stops the DynamoDB Local JVM it runs in a session
of its own (so a process-group kill alone would not reach it).
"""
import os
import runpy
import signal
import sys
import threading
import traceback


def _stop_when_stdin_closes():
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts interpreter shutdown.
    while os.read(0, 1024):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _own_s3_spill_directory():
    import localstack.services.s3.provider as s3_provider

    s3_provider.DEFAULT_S3_TMP_DIR = os.path.join(os.environ["FILESYSTEM_ROOT"], "tmp", "s3-storage")
    os.makedirs(s3_provider.DEFAULT_S3_TMP_DIR, exist_ok=True)


def _gateway_on_its_address_only():
    # LocalStack's Twisted gateway takes GATEWAY_LISTEN's port but listens on every interface
    # ("TODO: interface = host?" in localstack/runtime/server/twisted.py): an emulator that signs
    # with any key for anyone must be reachable from this machine only.
    import types

    import localstack.runtime.server.twisted as gateway
    from twisted.internet import endpoints

    host = os.environ["GATEWAY_LISTEN"].rsplit(":", 1)[0]

    class OnGatewayHost(endpoints.TCP4ServerEndpoint):
        def __init__(self, reactor, port, backlog=50, interface=""):
            super().__init__(reactor, port, backlog, interface or host)

    gateway.endpoints = types.SimpleNamespace(TCP4ServerEndpoint=OnGatewayHost, TCP6ServerEndpoint=endpoints.TCP6ServerEndpoint)


def _plugins_after_localstack_own():
    # STRATOPLANE_LOCALSTACK_PLUGINS (npm run deploy:local's LocalStack only) names a folder of
    # LocalStack plugins, put at the end of the import path rather than on PYTHONPATH (which comes
    # first): plux indexes a namespace's plugins by name in import-path order and keeps the last one
    # of a name, so a plugin there can replace one of LocalStack's own (its AWS::DynamoDB::GlobalTable
    # resource provider) as well as add new ones.
    if folder := os.environ.get("STRATOPLANE_LOCALSTACK_PLUGINS"):
        sys.path.append(folder)


threading.Thread(target=_stop_when_stdin_closes, name="stdin-watch", daemon=True).start()
_plugins_after_localstack_own()
_own_s3_spill_directory()
_gateway_on_its_address_only()
exit_code = 0
try:
    runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    exit_code = exit_.code if isinstance(exit_.code, int) else 1
except BaseException:
    traceback.print_exc()
    exit_code = 1
finally:
    # LocalStack has shut down by now; skip the interpreter's finalization, which takes seconds.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
