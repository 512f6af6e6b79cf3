// Tables of the app: TanStack Table (headless) for sorting and filtering, rendered as a
// plain accessible <table>; sortable headers are buttons, so the keyboard works.
import {
  type ColumnDef,
  type SortingState,
  flexRender,
  getCoreRowModel,
  getFilteredRowModel,
  getSortedRowModel,
  useReactTable,
} from '@tanstack/react-table';
import { Component, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

interface Props<T> {
  label: string;
  data: T[];
  columns: ColumnDef<T, any>[];
  initialSort?: SortingState;
  filterPlaceholder?: string;
  empty: string;
  rowKey: (row: T) => string;
  onOpen?: (row: T) => void;
  /** Told the sorting whenever it changes (a page whose sort values move re-sorts). */
  onSort?: (sorting: SortingState) => void;
  /**
   * Rows whose item (same object) and columns are unchanged are not rendered again, only
   * moved: for a page that re-sorts the same items often and whose cells update
   * themselves (the fleet's live values). Their click handler is the one they were first
   * rendered with.
   */
  stableRows?: boolean;
}

/** A row rendered again only when its item or the columns change (see `stableRows`). */
class StableRow extends Component<{ item: unknown; columns: unknown; children: ComponentChildren }> {
  shouldComponentUpdate(next: { item: unknown; columns: unknown }) {
    return next.item !== this.props.item || next.columns !== this.props.columns;
  }
  render() {
    return this.props.children;
  }
}

export function DataTable<T>({ label, data, columns, initialSort = [], filterPlaceholder, empty, rowKey, onOpen, onSort, stableRows }: Props<T>) {
  const [sorting, setSorting] = useState<SortingState>(initialSort);
  useEffect(() => onSort?.(sorting), [sorting, onSort]);
  const [filter, setFilter] = useState('');
  const table = useReactTable({
    data,
    columns,
    state: { sorting, globalFilter: filter },
    onSortingChange: setSorting,
    onGlobalFilterChange: setFilter,
    getRowId: rowKey,
    getCoreRowModel: getCoreRowModel(),
    getSortedRowModel: getSortedRowModel(),
    getFilteredRowModel: getFilteredRowModel(),
  });
  const rows = table.getRowModel().rows;
  return (
    <div class="table-block">
      <div class="table-tools">
        <label>
          <span class="visually-hidden">Filter {label}</span>
          <input
            type="search"
            placeholder={filterPlaceholder ?? `Filter ${label}`}
            value={filter}
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
          />
        </label>
        <span class="muted" aria-live="polite">
          {rows.length} of {data.length}
        </span>
      </div>
      <div class="table-scroll">
        <table aria-label={label}>
          <thead>
            {table.getHeaderGroups().map((group) => (
              <tr key={group.id}>
                {group.headers.map((header) => {
                  const sorted = header.column.getIsSorted();
                  return (
                    <th
                      key={header.id}
                      scope="col"
                      aria-sort={sorted === 'asc' ? 'ascending' : sorted === 'desc' ? 'descending' : 'none'}
                    >
                      {header.column.getCanSort() ? (
                        <button type="button" class="sort" onClick={header.column.getToggleSortingHandler()}>
                          {flexRender(header.column.columnDef.header, header.getContext())}
                          <span aria-hidden="true">{sorted === 'asc' ? ' ▲' : sorted === 'desc' ? ' ▼' : ''}</span>
                        </button>
                      ) : (
                        flexRender(header.column.columnDef.header, header.getContext())
                      )}
                    </th>
                  );
                })}
              </tr>
            ))}
          </thead>
          <tbody>
            {rows.length === 0 ? (
              <tr>
                <td colSpan={columns.length} class="muted">
                  {data.length === 0 ? empty : 'Nothing matches the filter.'}
                </td>
              </tr>
            ) : (
              rows.map((row) => {
                const tr = (
                  <tr
                    key={row.id}
                    class={onOpen ? 'clickable' : undefined}
                    onClick={onOpen ? (e) => (e.target as HTMLElement).closest('a,button') || onOpen(row.original) : undefined}
                  >
                    {row.getVisibleCells().map((cell) => (
                      <td key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</td>
                    ))}
                  </tr>
                );
                return stableRows ? (
                  <StableRow key={row.id} item={row.original} columns={columns}>
                    {tr}
                  </StableRow>
                ) : (
                  tr
                );
              })
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}
