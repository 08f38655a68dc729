import { Link, usePageTitle } from '../components/common';

export function NotFound() {
  usePageTitle('Page not found');
  return (
    <main id="main">
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        There is no such page. <Link href="/">Back to the start</Link>.
      </p>
    </main>
  );
}
