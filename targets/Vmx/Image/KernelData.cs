namespace EptFuzz.Targets.Vmx.Image;

/// <summary>The kernel's descriptor tables (GDT with a 64-bit TSS, IDT), laid out at <see cref="KernelLayout.Data"/>.</summary>
internal static class KernelData
{
    public static byte[] Build(IReadOnlyList<ulong> exceptionStubs)
    {
        var data = new byte[KernelLayout.DataSize];
        Span<byte> span = data;

        // GDT: the boot sector's flat descriptors, a spare slot, then the TSS descriptor at 0x28.
        ulong[] gdt = [.. BootSector.GdtEntries, 0];
        for (int i = 0; i < gdt.Length; i++)
        {
            Put(span, KernelLayout.Gdt + (uint)(i * 8), gdt[i]);
        }

        // 64-bit available TSS (type 9), present, limit 0x67 (SDM "TSS Descriptor in 64-bit mode").
        const ulong tss = KernelLayout.Tss;
        ulong low = 0x67UL | ((tss & 0xFFFFFF) << 16) | (0x89UL << 40) | (((tss >> 24) & 0xFF) << 56);
        Put(span, KernelLayout.Gdt + KernelLayout.TssSelector, low);
        Put(span, KernelLayout.Gdt + KernelLayout.TssSelector + 8, tss >> 32);
        int gdtBytes = KernelLayout.TssSelector + 16;
        PutPointer(span, KernelLayout.GdtPointer, (ushort)(gdtBytes - 1), KernelLayout.Gdt);

        // The I/O-map base beyond the limit: no I/O bitmap.
        BitConverter.TryWriteBytes(span[(int)(KernelLayout.Tss - KernelLayout.Data + 0x66)..], (ushort)0x68);

        if (exceptionStubs.Count != KernelLayout.IdtVectors)
        {
            throw new ArgumentException($"expected {KernelLayout.IdtVectors} exception stubs", nameof(exceptionStubs));
        }

        for (int v = 0; v < exceptionStubs.Count; v++)
        {
            ulong handler = exceptionStubs[v];
            // 64-bit interrupt gate (type 0xE), present, DPL 0, IST 0.
            ulong gateLow = (handler & 0xFFFF) | ((ulong)KernelLayout.Code64Selector << 16) | (0x8EUL << 40) | (((handler >> 16) & 0xFFFF) << 48);
            Put(span, KernelLayout.Idt + (uint)(v * 16), gateLow);
            Put(span, KernelLayout.Idt + (uint)(v * 16) + 8, handler >> 32);
        }

        PutPointer(span, KernelLayout.IdtPointer, (ushort)(KernelLayout.IdtVectors * 16 - 1), KernelLayout.Idt);
        return data;
    }

    private static void Put(Span<byte> data, uint address, ulong value) =>
        BitConverter.TryWriteBytes(data[(int)(address - KernelLayout.Data)..], value);

    private static void PutPointer(Span<byte> data, uint address, ushort limit, ulong baseAddress)
    {
        BitConverter.TryWriteBytes(data[(int)(address - KernelLayout.Data)..], limit);
        BitConverter.TryWriteBytes(data[(int)(address - KernelLayout.Data + 2)..], baseAddress);
    }
}
