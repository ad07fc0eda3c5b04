"""A Lambda runtime executor that creates functions and runs none (LAMBDA_RUNTIME_EXECUTOR=create-only).

LocalStack's only executor ("docker") prepares every new function version by downloading its
runtime init binary from GitHub and pulling the runtime's Docker image; on a machine with neither
the version ends Failed ("Error while creating lambda"), and so does every AWS::Lambda::Function of
a CloudFormation stack. `npm run deploy:local` proves that the template deploys, not that LocalStack
runs the functions (the local runner runs them, in Node): with this executor, CreateFunction stores
the code and configuration as Lambda does and the version becomes Active; an invocation fails with
a message that says why.
"""

from __future__ import annotations

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

NOT_RUN = (
    "this LocalStack creates Lambda functions but runs none (LAMBDA_RUNTIME_EXECUTOR=create-only, "
    "set by Stratoplane's deploy:local): the local runner (npm start) runs the functions"
)


class CreateOnlyRuntimeExecutor(RuntimeExecutor):
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        # Nothing to prepare: the code archive is already stored by CreateFunction.
        pass

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True

    def start(self, env_vars: dict[str, str]) -> None:
        raise LambdaRuntimeException(NOT_RUN)

    def stop(self) -> None:
        pass

    def get_address(self) -> str:
        raise LambdaRuntimeException(NOT_RUN)

    def get_endpoint_from_executor(self) -> str:
        raise LambdaRuntimeException(NOT_RUN)

    def get_runtime_endpoint(self) -> str:
        raise LambdaRuntimeException(NOT_RUN)

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        raise LambdaRuntimeException(NOT_RUN)

    def get_logs(self) -> str:
        return NOT_RUN


class CreateOnlyRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "create-only"

    def load(self, *args, **kwargs):
        return CreateOnlyRuntimeExecutor
