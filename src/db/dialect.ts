/** The two databases the project runs on. */
export type DialectKind = 'sqlite' | 'postgres';
