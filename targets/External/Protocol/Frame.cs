using System.Buffers.Binary;
using System.Text;

namespace EptFuzz.Targets.External.Protocol;

/// <summary>A command being written: little-endian fields appended to one reusable buffer.</summary>
internal sealed class FrameWriter
{
    private byte[] buffer = new byte[256];
    private int length;

    /// <summary>Starts a frame: the 4-byte length is filled in by <see cref="Finish"/>.</summary>
    public FrameWriter Begin(Command command)
    {
        length = 4;
        return U8((byte)command);
    }

    public FrameWriter U8(byte value)
    {
        Ensure(1);
        buffer[length++] = value;
        return this;
    }

    public FrameWriter U16(ushort value)
    {
        Ensure(2);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(length), value);
        length += 2;
        return this;
    }

    public FrameWriter U32(uint value)
    {
        Ensure(4);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(length), value);
        length += 4;
        return this;
    }

    public FrameWriter U64(ulong value)
    {
        Ensure(8);
        BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(length), value);
        length += 8;
        return this;
    }

    public FrameWriter Text(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        U16(checked((ushort)bytes.Length));
        Ensure(bytes.Length);
        bytes.CopyTo(buffer, length);
        length += bytes.Length;
        return this;
    }

    /// <summary>The whole frame, length prefix included.</summary>
    public ReadOnlySpan<byte> Finish()
    {
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)(length - 4));
        return buffer.AsSpan(0, length);
    }

    private void Ensure(int more)
    {
        if (length + more > buffer.Length)
        {
            Array.Resize(ref buffer, Math.Max(buffer.Length * 2, length + more));
        }
    }
}

/// <summary>A protocol rule the target broke: a finding of kind protocol, named by <see cref="Rule"/>.</summary>
internal sealed class ProtocolViolation(string rule, string message) : Exception(message)
{
    /// <summary>A short stable word for the signature ("short-answer", "unknown-answer", …).</summary>
    public string Rule { get; } = rule;
}

/// <summary>An answer being read: bounds-checked little-endian fields of one received body.</summary>
internal ref struct FrameReader
{
    private readonly ReadOnlySpan<byte> body;
    private int position;

    public FrameReader(ReadOnlySpan<byte> body)
    {
        this.body = body;
    }

    public readonly int Remaining => body.Length - position;

    public byte U8()
    {
        Need(1);
        return body[position++];
    }

    public ushort U16()
    {
        Need(2);
        var v = BinaryPrimitives.ReadUInt16LittleEndian(body[position..]);
        position += 2;
        return v;
    }

    public uint U32()
    {
        Need(4);
        var v = BinaryPrimitives.ReadUInt32LittleEndian(body[position..]);
        position += 4;
        return v;
    }

    public ulong U64()
    {
        Need(8);
        var v = BinaryPrimitives.ReadUInt64LittleEndian(body[position..]);
        position += 8;
        return v;
    }

    public string Text()
    {
        int n = U16();
        Need(n);
        var s = Encoding.UTF8.GetString(body.Slice(position, n));
        position += n;
        return s;
    }

    /// <summary>The answer must end here: trailing bytes mean the two sides disagree on the layout.</summary>
    public readonly void End(string what)
    {
        if (position != body.Length)
        {
            throw new ProtocolViolation("long-answer", $"{what}: {body.Length - position} bytes after the last field");
        }
    }

    private readonly void Need(int n)
    {
        if (position + n > body.Length)
        {
            throw new ProtocolViolation("short-answer", $"the answer ends after {body.Length} bytes, inside a field");
        }
    }
}
