/** Errors the API turns into 4xx answers; anything else is a 500 with no detail. */
export class ClientError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends ClientError {
  constructor(message: string) {
    super(400, message);
  }
}

export class NotFoundError extends ClientError {
  constructor(kind: string, id: string) {
    super(404, `${kind} ${id} not found`);
  }
}

export class ConflictError extends ClientError {
  constructor(message: string) {
    super(409, message);
  }
}

export class UnauthorizedError extends ClientError {
  constructor() {
    super(401, 'Unauthorized');
  }
}

/** Only for what a caller may not do at all (a route, a scope); another tenant's resource is a 404. */
export class ForbiddenError extends ClientError {
  constructor(message: string) {
    super(403, message);
  }
}

/** A body in a media type the API does not read (it reads JSON only). */
export class UnsupportedMediaTypeError extends ClientError {
  constructor(message: string) {
    super(415, message);
  }
}

/** A resource others still use; the message names them. */
export class InUseError extends ConflictError {}
