namespace EptFuzz.Targets.Vmx.Image;

/// <summary>Encodes <see cref="ScriptOp"/> commands (four qwords each) for the kernel.</summary>
public sealed class ScriptBuilder
{
    public const int CommandBytes = 32;

    private readonly List<ulong> words = [];

    public int Count => words.Count / 4;

    public ScriptBuilder Add(ScriptOp op, ulong a = 0, ulong b = 0, ulong c = 0, byte flags = 0)
    {
        words.Add((ulong)op | ((ulong)flags << 8));
        words.Add(a);
        words.Add(b);
        words.Add(c);
        return this;
    }

    public ScriptBuilder Write(ulong address, ulong value) => Add(ScriptOp.Write, address, value);

    /// <summary>The bytes of the script, always terminated by <see cref="ScriptOp.End"/>.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[(words.Count + 4) * 8];
        for (int i = 0; i < words.Count; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), words[i]);
        }

        return bytes; // the trailing four zero words are the End command
    }
}
