import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef } from 'preact/hooks';
import { ApiError } from '../api';
import { onLinkClick } from '../router';

export function Link(props: { href: string; class?: string; current?: boolean; children: ComponentChildren }) {
  return (
    <a
      href={props.href}
      class={props.class}
      aria-current={props.current ? 'page' : undefined}
      onClick={onLinkClick}
    >
      {props.children}
    </a>
  );
}

export function Loading(props: { what: string }) {
  return (
    <p class="loading" role="status">
      Loading {props.what}…
    </p>
  );
}

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** An error the user should read, announced by screen readers. */
export function ErrorNotice(props: { error: unknown; what?: string }) {
  return (
    <p class="notice notice-error" role="alert">
      {props.what ? `Could not load ${props.what}: ` : ''}
      {errorMessage(props.error)}
    </p>
  );
}

/** A confirmation or success message, announced politely. */
export function StatusNotice(props: { message: string | null }) {
  return (
    <p class={props.message ? 'notice notice-ok' : 'visually-hidden'} role="status" aria-live="polite">
      {props.message ?? ''}
    </p>
  );
}

/**
 * A modal question built on the native <dialog>, which traps focus, closes on Escape and
 * returns focus to the button that opened it.
 */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  confirmLabel: string;
  danger?: boolean;
  confirmDisabled?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
  children: ComponentChildren;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (props.open && !element.open) element.showModal();
    if (!props.open && element.open) element.close();
  }, [props.open]);
  return (
    <dialog
      ref={dialog}
      aria-labelledby={titleId}
      onCancel={(event) => {
        event.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
      <div class="dialog-actions">
        <button type="button" class="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button
          type="button"
          class={props.danger ? 'button button-danger' : 'button button-primary'}
          disabled={props.confirmDisabled}
          onClick={props.onConfirm}
        >
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** Moves focus to the page's main heading after navigation, so screen readers announce it. */
export function usePageTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Chronicle`;
    const heading = document.querySelector<HTMLElement>('main h1');
    heading?.focus({ preventScroll: true });
  }, [title]);
}
