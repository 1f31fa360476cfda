namespace EptFuzz.Harness.Cases;

/// <summary>
/// The <c>key=value</c> tokens of one step, checked against the verb's key list (unknown and
/// repeated keys are errors), with typed getters that report a bad value at the value's column.
/// A getter returns null when the key is absent or its value is bad; <see cref="Failed"/> says which.
/// </summary>
internal sealed class StepFields
{
    /// <summary>A value reader: false with a message; the error is reported at the value's column.</summary>
    public delegate bool Reader<T>(ReadOnlySpan<char> value, out T result, out string error);

    private readonly ErrorSink errors;
    private readonly string text;
    private readonly int line;
    private readonly List<Field> fields = new(8);

    public StepFields(ErrorSink errors, string text, int line, string verb, int verbColumn)
    {
        this.errors = errors;
        this.text = text;
        this.line = line;
        Verb = verb;
        VerbColumn = verbColumn;
    }

    public string Verb { get; }

    public int VerbColumn { get; }

    /// <summary>Some key or value of this step was rejected.</summary>
    public bool Failed { get; private set; }

    /// <summary>Adds one token (start offset in the line and length); reports malformed, unknown or repeated keys.</summary>
    public void Add(int start, int length, string[] allowedKeys)
    {
        ReadOnlySpan<char> token = text.AsSpan(start, length);
        int eq = token.IndexOf('=');
        if (eq < 0)
        {
            Fail(start, $"expected key=value, found {CaseSyntax.Quote(token)}");
            return;
        }

        if (eq == 0)
        {
            Fail(start, $"missing key before '=' in {CaseSyntax.Quote(token)}");
            return;
        }

        ReadOnlySpan<char> key = token[..eq];
        string? name = null;
        foreach (string allowed in allowedKeys)
        {
            if (key.SequenceEqual(allowed))
            {
                name = allowed;
                break;
            }
        }

        if (name is null)
        {
            string expected = allowedKeys.Length == 0 ? "it takes no keys" : "expected " + string.Join(", ", allowedKeys);
            Fail(start, $"unknown key {CaseSyntax.Quote(key)} for {Verb} ({expected})");
            return;
        }

        foreach (Field f in fields)
        {
            if (f.Key == name)
            {
                Fail(start, $"key {name} appears twice (first at column {f.KeyStart + 1})");
                return;
            }
        }

        fields.Add(new Field(name, start, start + eq + 1, length - eq - 1));
    }

    public bool Has(string key) => Find(key) is not null;

    /// <summary>1-based column of the key, or of the verb when the key is absent.</summary>
    public int KeyColumn(string key) => Find(key) is { } f ? f.KeyStart + 1 : VerbColumn;

    /// <summary>1-based column of the key's value, or of the verb when the key is absent.</summary>
    public int ValueColumn(string key) => Find(key) is { } f ? f.ValueStart + 1 : VerbColumn;

    public T? Get<T>(string key, Reader<T> reader)
        where T : struct
    {
        if (Find(key) is not { } f)
        {
            return null;
        }

        if (reader(text.AsSpan(f.ValueStart, f.ValueLength), out T value, out string error))
        {
            return value;
        }

        Fail(f.ValueStart, $"{key}: {error}");
        return null;
    }

    /// <summary>Like <see cref="Get{T}"/>, and a missing key is an error at the verb.</summary>
    public T? Require<T>(string key, Reader<T> reader)
        where T : struct
    {
        if (!Has(key))
        {
            FailAt(VerbColumn, $"{Verb} needs {key}=");
            return null;
        }

        return Get(key, reader);
    }

    /// <summary>The raw value text of a key (for values with their own grammar, like ranges).</summary>
    public bool TryRaw(string key, out int valueStart, out string value)
    {
        if (Find(key) is { } f)
        {
            valueStart = f.ValueStart;
            value = text.Substring(f.ValueStart, f.ValueLength);
            return true;
        }

        valueStart = 0;
        value = "";
        return false;
    }

    /// <summary>Reports at a 0-based offset in the line.</summary>
    public void Fail(int offset, string message) => FailAt(offset + 1, message);

    /// <summary>Reports at a 1-based column.</summary>
    public void FailAt(int column, string message)
    {
        Failed = true;
        errors.Report(line, column, message);
    }

    private Field? Find(string key)
    {
        foreach (Field f in fields)
        {
            if (f.Key == key)
            {
                return f;
            }
        }

        return null;
    }

    private sealed record Field(string Key, int KeyStart, int ValueStart, int ValueLength);
}
