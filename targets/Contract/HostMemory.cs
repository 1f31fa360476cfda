namespace EptFuzz.Contract;

/// <summary>
/// Host-physical memory as 64-bit words. Addresses are 8-byte aligned; memory never written
/// reads as zero. Every target walks tables through this view.
/// </summary>
public interface IHostMemory
{
    ulong Read(Hpa address);

    void Write(Hpa address, ulong value);

    /// <summary>
    /// The 512 words of the 4 KiB page at <paramref name="page"/> (page-aligned) into
    /// <paramref name="words"/> (at least 512 long): what 512 <see cref="Read"/>s give, which is
    /// what this default does; a memory that holds whole pages copies one instead.
    /// </summary>
    void ReadPage(Hpa page, Span<ulong> words)
    {
        for (int i = 0; i < 512; i++)
        {
            words[i] = Read(new Hpa(page.Value + ((ulong)i << 3)));
        }
    }
}

/// <summary>A host-memory image whose backed 4 KiB pages can be listed (the VMX oracle relocates them).</summary>
public interface IHostMemoryImage : IHostMemory
{
    /// <summary>Page-aligned host-physical addresses of every page that holds a non-zero word or was written.</summary>
    IEnumerable<Hpa> Pages { get; }
}

/// <summary>One 8-byte write to host memory.</summary>
public readonly record struct MemoryWrite(Hpa Address, ulong Value);
