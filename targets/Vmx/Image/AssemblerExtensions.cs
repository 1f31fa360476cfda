using Iced.Intel;

namespace EptFuzz.Targets.Vmx.Image;

/// <summary>Turns an Iced <see cref="Assembler"/> into bytes at a fixed address; all image code is position dependent.</summary>
internal static class AssemblerExtensions
{
    public static byte[] ToBytes(this Assembler assembler, ulong address)
    {
        using var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    /// <summary>Assembles and returns the address of every label in <paramref name="labels"/> as well.</summary>
    public static byte[] ToBytes(this Assembler assembler, ulong address, IReadOnlyList<Label> labels, out ulong[] labelAddresses)
    {
        using var stream = new MemoryStream();
        var result = assembler.Assemble(new StreamCodeWriter(stream), address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        labelAddresses = new ulong[labels.Count];
        for (int i = 0; i < labels.Count; i++)
        {
            labelAddresses[i] = result.GetLabelRIP(labels[i]);
        }

        return stream.ToArray();
    }

    /// <summary>Writes the string to the debug console (port 0xE9), one OUT per byte (the device takes 1-byte accesses only).</summary>
    public static void PrintLiteral(this Assembler a, string text)
    {
        a.mov(AssemblerRegisters.dx, DebugPort.Console);
        foreach (char c in text)
        {
            a.mov(AssemblerRegisters.al, (byte)c);
            a.@out(AssemblerRegisters.dx, AssemblerRegisters.al);
        }
    }
}
