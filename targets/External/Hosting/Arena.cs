using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace EptFuzz.Targets.External.Hosting;

/// <summary>
/// The shared-memory file a target builds its tables in (PROTOCOL.md "The arena"): created here,
/// mapped by both sides, read by the harness through a pointer. Sparse: pages never touched cost
/// nothing. The file is deleted once the target has mapped it.
/// </summary>
internal sealed unsafe class Arena : IDisposable
{
    public const int PageBytes = 4096;
    public const int WordsPerPage = PageBytes / 8;

    private static int counter;
    private readonly MemoryMappedFile file;
    private readonly MemoryMappedViewAccessor view;
    private byte* basePointer;
    private bool disposed;

    public Arena(int pages)
    {
        Pages = pages;
        string dir = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        RemoveOrphans(dir);
        FilePath = Path.Combine(dir, $"eptfuzz-arena-{Environment.ProcessId}-{Interlocked.Increment(ref counter)}");
        // The arena, then its journal copy (PROTOCOL.md "Journal mode"): as many pages again.
        long bytes = 2L * pages * PageBytes;
        using (var stream = new FileStream(FilePath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite))
        {
            stream.SetLength(bytes);
        }

        file = MemoryMappedFile.CreateFromFile(FilePath, FileMode.Open, null, bytes, MemoryMappedFileAccess.ReadWrite);
        view = file.CreateViewAccessor(0, bytes, MemoryMappedFileAccess.ReadWrite);
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        basePointer += view.PointerOffset;
    }

    public int Pages { get; }

    public string FilePath { get; }

    /// <summary>Removes the file name; both mappings stay.</summary>
    public void Unlink()
    {
        if (File.Exists(FilePath))
        {
            File.Delete(FilePath);
        }
    }

    /// <summary>
    /// The journal's copy of arena page <paramref name="page"/>: what the target's SDK last reported
    /// of it. The harness writes it beside the arena word when it writes a word between commands.
    /// </summary>
    public Span<ulong> Shadow(uint page) => Page(page, Pages);

    /// <summary>The 512 words of arena page <paramref name="page"/>, live (the target writes them).</summary>
    public Span<ulong> Page(uint page) => Page(page, 0);

    private Span<ulong> Page(uint page, int offset)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (page >= (uint)Pages)
        {
            throw new ArgumentOutOfRangeException(nameof(page), page, $"the arena has {Pages} pages");
        }

        return new Span<ulong>(basePointer + (((long)page + offset) * PageBytes), WordsPerPage);
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        view.Dispose();
        file.Dispose();
        try
        {
            Unlink();
        }
        catch (IOException)
        {
            // Deleted already by a previous attempt; nothing is left behind.
        }
    }

    /// <summary>
    /// Arena files of eptfuzz processes that no longer run (killed between creating a file and the
    /// target mapping it) are removed, so a crashed campaign leaves nothing in shared memory.
    /// </summary>
    private static void RemoveOrphans(string dir)
    {
        foreach (var path in Directory.EnumerateFiles(dir, "eptfuzz-arena-*"))
        {
            var parts = Path.GetFileName(path).Split('-');
            if (parts.Length == 4 && int.TryParse(parts[2], out int pid) && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
            {
                try
                {
                    File.Delete(path);
                }
                catch (IOException)
                {
                    // Another eptfuzz removed it first.
                }
                catch (UnauthorizedAccessException)
                {
                    // Another user's file: not ours to remove.
                }
            }
        }
    }

    /// <summary>Zeroes an arena page from the harness side.</summary>
    public void Clear(uint page)
    {
        MemoryMarshal.AsBytes(Page(page)).Clear();
        MemoryMarshal.AsBytes(Shadow(page)).Clear();
    }
}
