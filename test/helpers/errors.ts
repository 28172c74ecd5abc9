/**
 * Await `p` and return what it rejected with, asserting it is an instance of `type`.
 *
 * @throws Error when `p` resolves (the test then fails).
 */
export async function rejectionOf<E extends Error>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return err as E;
  }
  throw new Error(`expected a ${type.name}, nothing was thrown`);
}
