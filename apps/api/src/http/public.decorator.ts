import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'dinoq:public';

/** Marks a route that answers without an API key (health probes). */
export const Public = () => SetMetadata(IS_PUBLIC, true);
